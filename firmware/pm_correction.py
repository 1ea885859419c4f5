# Humidity corrections for optical PM sensors, reported as extra channels beside the raw values
# (which are always kept): "pm25_epa" from epa_pm25(), "pm25_dry" and "pm10_dry" from
# kappa_dry(), all ("...", "ug/m3", -1).
#
# Pure integer functions (no floats, so nothing allocates on the ESP32): PM and relative
# humidity in tenths (0.1 ug/m3, 0.1 %RH), results in 0.1 ug/m3. tenths() rescales a channel
# value of another exponent. Every intermediate product stays below 2**30 (an ESP32 small int)
# for inputs in range; inputs are clamped to it.
from micropython import const

_PM_MAX = const(10000)   # 1000 ug/m3: the PMS5003 maximum range; the fits end well below
_RH_MAX = const(990)     # kappa_dry: growth diverges at 100 %RH, so RH is clamped to 99 %


def tenths(v, exp):
    # A fixed-point value v * 10**exp as an int in tenths, rounded (halves up).
    while exp > -1:
        v *= 10
        exp -= 1
    d = 1
    while exp < -1:
        d *= 10
        exp += 1
    return (2 * v + d) // (2 * d)


def epa_pm25(pa_cf1, rh):
    # US EPA correction of Plantower PM2.5 (PurpleAir PA-II), as used on the AirNow Fire and
    # Smoke Map since October 2021. Below 30 ug/m3 it is the US-wide fit of Barkjohn, Gantt and
    # Clements, Atmos. Meas. Tech. 14, 4617-4637 (2021):
    #     PM2.5 = 0.524 PA - 0.0862 RH + 5.75
    # and above it the map's piecewise extension for smoke (with w the position inside a blend):
    #     30 <= PA < 50:   (0.786 w + 0.524 (1 - w)) PA - 0.0862 RH + 5.75,   w = PA/20 - 3/2
    #     50 <= PA < 210:  0.786 PA - 0.0862 RH + 5.75
    #     210 <= PA < 260: (0.69 w + 0.786 (1 - w)) PA - 0.0862 RH (1 - w)
    #                      + 2.966 w + 5.75 (1 - w) + 8.84e-4 PA^2 w,          w = PA/50 - 21/5
    #     PA >= 260:       2.966 + 0.69 PA + 8.84e-4 PA^2
    # PA is the CF=1 PM2.5 (channel pm25_cf1, not the atmospheric one), RH in %. The fit was made
    # for PurpleAir's internal RH, which reads drier than ambient; negative results (clean air,
    # high RH) are reported as 0. Not for SDS011 data.
    # Arguments and result in tenths; the sum below is the result times 10**4.
    p = min(max(pa_cf1, 0), _PM_MAX)
    h = min(max(rh, 0), 1000)
    if p < 300:
        s = 5240 * p - 862 * h + 575000
    elif p < 500:
        # slope 0.524 + 0.262 w, w = (p - 300) / 200
        s = 5240 * p + 131 * (p - 300) * p // 10 - 862 * h + 575000
    elif p < 2100:
        s = 7860 * p - 862 * h + 575000
    elif p < 2600:
        d = p - 2100                                    # w = d / 500
        q = (p * p // 2) * 221 // 125                   # 8.84e-4 PA^2, as tenths * 10**4
        s = (7860 * p - 48 * d * p // 25                # (0.786 - 0.096 w) PA
             - 862 * h * (500 - d) // 500
             + (296600 * d + 575000 * (500 - d)) // 500
             + (q // 500) * d + (q % 500) * d // 500)   # q * w without overflowing q * d
    else:
        s = 296600 + 6900 * p + (p * p // 100) * 884 // 10
    return max((s + 5000) // 10000, 0)


def kappa_dry(pm, rh, kappa_milli=400):
    # Dry-particle mass from a wet optical reading by kappa-Koehler hygroscopic growth
    # (Petters and Kreidenweis 2007; applied to low-cost OPCs by Crilley et al., Atmos. Meas.
    # Tech. 11, 709-720, 2018):
    #     PM_dry = PM / (1 + kappa / (100/RH - 1)) = PM (100 - RH) / (100 - RH + kappa RH)
    # kappa in thousandths (400 = 0.4, a mid value for mixed urban aerosol; fit it against a
    # reference where you can: sea salt and sulphate grow more, soot and dust less). The growth
    # applies to deliquesced particles; below roughly 40 %RH it overcorrects a little.
    # pm and rh in tenths; result in tenths.
    p = min(max(pm, 0), _PM_MAX)
    a = 1000 - min(max(rh, 0), _RH_MAX)
    den = 100 * a + (max(kappa_milli, 0) * (1000 - a) + 5) // 10
    return (100 * a * p + den // 2) // den
