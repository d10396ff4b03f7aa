"""Air-quality index tables and pure array functions: ISPU (Indonesia) and the US EPA AQI.

- ISPU: Permen LHK P.14/MENLHK/SETJEN/KUM.1/7/2020, Lampiran, table "Batas dan konversi nilai
  konsentrasi parameter ISPU". Concentrations in µg/m³; the table heads *every* parameter
  (PM10, PM2.5, SO2, CO, O3, NO2, HC) "24 jam", so all seven are 24-hour averages
  (`ISPU_HOURS`). "PM2.5 is published hourly" is the publication rhythm, not the averaging
  period: the PM2.5 ISPU is announced every hour (a 24-hour average ending at that hour), the
  others at least at 09:00 and 15:00 (KLHK, Ditjen PPKL, "ISPU sebagai informasi mutu udara
  ambien di Indonesia", 2020). Each band's lower edge is the previous band's upper edge, so the
  sub-index is continuous (`np.interp` is exactly the regulation's formula).
- EPA: Technical Assistance Document EPA-454/B-24-002 (May 2024), Table 6. PM in µg/m³, O3 and
  CO in ppm, SO2 and NO2 in ppb; concentrations are truncated before the band lookup; bands
  have gaps that truncation closes. ``pm25_table="pre2024"`` selects the 2012 PM2.5 breakpoints.
  Footnotes of Table 6 followed here: 8-hour O3 does not define AQI 301 and above (1-hour O3
  does), 1-hour O3 does not define AQI 100 and below, and 1-hour SO2 does not define AQI above
  200: from 305 ppb on, the 24-hour SO2 average is used (`epa_so2_subindex`).

Above a table's top, both indices extrapolate the top band (so an index stays monotone and a
catastrophe still reads as one). A concentration a table does not define comes out NaN (8-hour
O3 above 0.200 ppm, 1-hour O3 below 0.125 ppm, 1-hour SO2 above 304 ppb, 24-hour SO2 below
305 ppb); the index is the max over the defined sub-indices.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ISPU_LEVELS = np.array([0, 50, 100, 200, 300, 500], dtype=np.float64)
ISPU_BOUNDS: dict[str, tuple[float, ...]] = {  # µg/m³, upper edge of each band
    "pm10": (0, 50, 150, 350, 420, 500),
    "pm25": (0, 15.5, 55.4, 150.4, 250.4, 500),
    "so2": (0, 52, 180, 400, 800, 1200),
    "co": (0, 4000, 8000, 15000, 30000, 45000),
    "o3": (0, 120, 235, 400, 800, 1000),
    "no2": (0, 80, 200, 1130, 2260, 3000),
    "hc": (0, 45, 100, 215, 432, 648),
}
ISPU_HOURS: dict[str, float] = dict.fromkeys(ISPU_BOUNDS, 24.0)  # "24 jam" for every parameter
ISPU_CATEGORIES = (  # (highest index in the category, name, colour name, hex)
    (50, "Baik", "green", "#00B050"),
    (100, "Sedang", "blue", "#0070C0"),
    (200, "Tidak Sehat", "yellow", "#FFFF00"),
    (300, "Sangat Tidak Sehat", "red", "#FF0000"),
    (np.inf, "Berbahaya", "black", "#000000"),
)

Band = tuple[float, float, int, int]  # (C_lo, C_hi, I_lo, I_hi)
EPA_BANDS: dict[str, tuple[Band, ...]] = {
    "pm25": ((0.0, 9.0, 0, 50), (9.1, 35.4, 51, 100), (35.5, 55.4, 101, 150),
             (55.5, 125.4, 151, 200), (125.5, 225.4, 201, 300), (225.5, 325.4, 301, 500)),
    "pm10": ((0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200),
             (355, 424, 201, 300), (425, 604, 301, 500)),
    "o3_8h": ((0.000, 0.054, 0, 50), (0.055, 0.070, 51, 100), (0.071, 0.085, 101, 150),
              (0.086, 0.105, 151, 200), (0.106, 0.200, 201, 300)),
    "o3_1h": ((0.125, 0.164, 101, 150), (0.165, 0.204, 151, 200), (0.205, 0.404, 201, 300),
              (0.405, 0.604, 301, 500)),
    "co": ((0.0, 4.4, 0, 50), (4.5, 9.4, 51, 100), (9.5, 12.4, 101, 150), (12.5, 15.4, 151, 200),
           (15.5, 30.4, 201, 300), (30.5, 50.4, 301, 500)),
    "so2": ((0, 35, 0, 50), (36, 75, 51, 100), (76, 185, 101, 150), (186, 304, 151, 200)),
    "so2_24h": ((305, 604, 201, 300), (605, 1004, 301, 500)),  # only above 200: TAD Table 6
    "no2": ((0, 53, 0, 50), (54, 100, 51, 100), (101, 360, 101, 150), (361, 649, 151, 200),
            (650, 1249, 201, 300), (1250, 2049, 301, 500)),
}
EPA_PM25_PRE2024: tuple[Band, ...] = (
    (0.0, 12.0, 0, 50), (12.1, 35.4, 51, 100), (35.5, 55.4, 101, 150), (55.5, 150.4, 151, 200),
    (150.5, 250.4, 201, 300), (250.5, 350.4, 301, 400), (350.5, 500.4, 401, 500))
EPA_DECIMALS = {"pm25": 1, "pm10": 0, "o3_8h": 3, "o3_1h": 3, "co": 1, "so2": 0, "so2_24h": 0,
                "no2": 0}
EPA_HOURS = {"pm25": 24.0, "pm10": 24.0, "o3_8h": 8.0, "o3_1h": 1.0, "co": 8.0, "so2": 1.0,
             "so2_24h": 24.0, "no2": 1.0}
EPA_CATEGORIES = (
    (50, "Good", "green", "#00E400"),
    (100, "Moderate", "yellow", "#FFFF00"),
    (150, "Unhealthy for Sensitive Groups", "orange", "#FF7E00"),
    (200, "Unhealthy", "red", "#FF0000"),
    (300, "Very Unhealthy", "purple", "#8F3F97"),
    (np.inf, "Hazardous", "maroon", "#7E0023"),
)
# g/mol; µg/m³ = ppb * MW / 24.45 at 25 °C and 1 atm.
MOLECULAR_WEIGHT = {"co": 28.01, "no2": 46.0055, "o3": 47.997, "so2": 64.066}
MOLAR_VOLUME_L = 24.45


def ppb_to_ugm3(gas: str, ppb: F64) -> F64:
    out: F64 = np.asarray(ppb, np.float64) * MOLECULAR_WEIGHT[gas] / MOLAR_VOLUME_L
    return out


def ugm3_to_ppb(gas: str, ugm3: F64) -> F64:
    out: F64 = np.asarray(ugm3, np.float64) * MOLAR_VOLUME_L / MOLECULAR_WEIGHT[gas]
    return out


def round_half_up(x: F64) -> F64:
    """Reported indices round halves up (EPA), not to even as numpy does."""
    out: F64 = np.floor(np.asarray(x, np.float64) + 0.5)
    return out


def ispu_subindex(pollutant: str, conc: F64) -> F64:
    """Unrounded ISPU sub-index of 24-hour average concentrations in µg/m³ (NaN stays NaN)."""
    x = np.asarray(ISPU_BOUNDS[pollutant], np.float64)
    c = np.asarray(conc, np.float64)
    top = ISPU_LEVELS[-1] + (c - x[-1]) * (ISPU_LEVELS[-1] - ISPU_LEVELS[-2]) / (x[-1] - x[-2])
    out: F64 = np.where(c > x[-1], top, np.interp(c, x, ISPU_LEVELS))
    return np.where(np.isnan(c), np.nan, out)


def epa_truncate(pollutant: str, conc: F64) -> F64:
    """Truncate to the EPA's reporting precision (rounding to 6 places first undoes float error,
    so 0.029 ppm does not truncate to 0.028)."""
    scale = 10.0 ** EPA_DECIMALS[pollutant]
    out: F64 = np.floor(np.round(np.asarray(conc, np.float64) * scale, 6)) / scale
    return out


def epa_subindex(pollutant: str, conc: F64, *, pm25_table: str = "2024") -> F64:
    """Unrounded AQI sub-index of a concentration in the EPA's unit, truncated first."""
    if pm25_table not in ("2024", "pre2024"):
        raise ValueError(f"pm25_table must be '2024' or 'pre2024', not {pm25_table!r}")
    bands = EPA_PM25_PRE2024 if pollutant == "pm25" and pm25_table == "pre2024" \
        else EPA_BANDS[pollutant]
    lo, hi, ilo, ihi = (np.array(col, np.float64) for col in zip(*bands, strict=True))
    # Small negative readings are sensor noise around zero, not an undefined concentration.
    c = epa_truncate(pollutant, np.maximum(np.asarray(conc, np.float64), 0.0))
    b = np.minimum(np.searchsorted(hi, c, side="left"), len(hi) - 1)
    out: F64 = (ihi[b] - ilo[b]) / (hi[b] - lo[b]) * (c - lo[b]) + ilo[b]
    capped = pollutant in ("o3_8h", "so2")  # the TAD hands higher values to another average
    undefined = np.isnan(c) | (c < lo[0]) | (capped & (c > hi[-1]))
    return np.where(undefined, np.nan, out)


def epa_so2_subindex(ppb_1h: F64, ppb_24h: F64) -> F64:
    """Unrounded SO2 sub-index from the 1-hour and 24-hour averages (ppb; NaN = unknown).

    TAD Table 6: "1-hour SO2 values do not define higher AQI values (>= 200). AQI values of 200
    or greater are calculated with 24-hour SO2 concentrations." Up to 304 ppb (truncated) the
    1-hour table applies. From 305 ppb, Pantau's reading of that footnote: the 1-hour value
    shows only that the AQI is at least 200; the 24-hour average raises it (305-604 ppb:
    201-300, 605-1004: 301-500) and leaves it at 200 when it is below 305 ppb or incomplete."""
    high = epa_truncate("so2", np.maximum(np.asarray(ppb_1h, np.float64), 0.0)) > 304
    day = epa_subindex("so2_24h", ppb_24h)
    out: F64 = np.where(high, np.fmax(day, 200.0), epa_subindex("so2", ppb_1h))
    return out


def category(index: F64, standard: str) -> npt.NDArray[np.int8]:
    """Category number (0 = best) of rounded indices; -1 for NaN. Names: `CATEGORIES`."""
    tops = np.array([c[0] for c in CATEGORIES[standard]], np.float64)
    idx = np.asarray(index, np.float64)
    out = np.searchsorted(tops, idx, side="left").astype(np.int8)
    return np.where(np.isnan(idx), np.int8(-1), out).astype(np.int8)


CATEGORIES = {"ispu": ISPU_CATEGORIES, "epa": EPA_CATEGORIES}


def nowcast(hourly: F64, *, decimals: int = 1) -> F64:
    """EPA NowCast for PM from hourly means, shape (n, 12), column 0 the most recent hour, NaN
    for a missing hour. Needs 2 of the 3 most recent hours, else NaN. Weight factor
    ``max(min/max, 0.5)``; the result is truncated to ``decimals``."""
    h = np.asarray(hourly, np.float64)
    valid = ~np.isnan(h)
    enough = valid[:, :3].sum(axis=1) >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        cmin, cmax = np.nanmin(np.where(valid, h, np.inf), axis=1), np.nanmax(
            np.where(valid, h, -np.inf), axis=1)
        w = np.where(cmax > 0, np.maximum(cmin / cmax, 0.5), 1.0)
        wk = np.where(valid, w[:, None] ** np.arange(h.shape[1])[None, :], 0.0)
        nc = np.sum(wk * np.where(valid, h, 0.0), axis=1) / np.sum(wk, axis=1)
    scale = 10.0 ** decimals
    out: F64 = np.where(enough, np.floor(np.round(nc * scale, 6)) / scale, np.nan)
    return out
