"""The processors' shared machinery, not processors themselves: the `Chain` that runs them
(`chain`), what stateful steps return (`derived`), the per-series sequencing kernels
(`segments`), rolling histories (`rolling`) and the air-quality tables and completeness rules
(`aqi_tables`, `aqi_completeness`)."""
