# Sensirion's VOC Index (Gas Index Algorithm 3.2, VOC mode), written for MicroPython from the
# published algorithm: the SGP40 raw signal is normalised by a slowly learned mean and standard
# deviation (12 h time constants, with a fast initial phase), mapped through a sigmoid onto
# 0..500 with 100 = the learned average, and smoothed by an adaptive low-pass filter.
# Output 0 during the first 45 s (blackout), then 1..500.
#
# Memory: the state lives in plain attributes, but floats are heap objects on the ESP32: each
# process() call leaves ~20 float temporaries (~300 bytes) of garbage, once per SGP40 sample.
import math

from micropython import const

_SRAW_MINIMUM = const(20000)
_INITIAL_BLACKOUT = 45.0
_INDEX_GAIN = 230.0
_SRAW_STD_INITIAL = 50.0
_SRAW_STD_BONUS = 220.0
_TAU_MEAN_HOURS = 12.0
_TAU_VARIANCE_HOURS = 12.0
_TAU_INITIAL_MEAN = 20.0
_INIT_DURATION_MEAN = 3600.0 * 0.75
_INIT_TRANSITION_MEAN = 0.01
_TAU_INITIAL_VARIANCE = 2500.0
_INIT_DURATION_VARIANCE = 3600.0 * 1.45
_INIT_TRANSITION_VARIANCE = 0.01
_GATING_THRESHOLD = 340.0
_GATING_THRESHOLD_INITIAL = 510.0
_GATING_THRESHOLD_TRANSITION = 0.09
_GATING_MAX_DURATION_MINUTES = 60.0 * 3.0
_GATING_MAX_RATIO = 0.3
_SIGMOID_L = 500.0
_SIGMOID_K = -0.0065
_SIGMOID_X0 = 213.0
_INDEX_OFFSET = 100.0
_LP_TAU_FAST = 20.0
_LP_TAU_SLOW = 500.0
_LP_ALPHA = -0.2
_GAMMA_SCALING = 64.0
_ADDITIONAL_GAMMA_MEAN_SCALING = 8.0
_FIX16_MAX = 32767.0      # the uptime counters saturate where the fixed-point original did


def _sigmoid(k, x0, sample):
    x = k * (sample - x0)
    if x < -50.0:
        return 1.0
    if x > 50.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(x))


class VocIndex:
    def __init__(self, sampling_interval=1.0, index_offset=_INDEX_OFFSET,
                 learning_time_offset_hours=_TAU_MEAN_HOURS,
                 learning_time_gain_hours=_TAU_VARIANCE_HOURS,
                 gating_max_duration_minutes=_GATING_MAX_DURATION_MINUTES,
                 std_initial=_SRAW_STD_INITIAL, gain_factor=_INDEX_GAIN):
        self.interval = float(sampling_interval)
        self.index_offset = float(index_offset)
        self.tau_mean_hours = float(learning_time_offset_hours)
        self.tau_variance_hours = float(learning_time_gain_hours)
        self.gating_max_minutes = float(gating_max_duration_minutes)
        self.std_initial = float(std_initial)
        self.gain = float(gain_factor)
        self.reset()

    def reset(self):
        # Forget everything learned (after an interruption of more than ~10 min).
        dt = self.interval
        dt_h = dt / 3600.0
        self.uptime = 0.0
        self.sraw = 0.0
        self.index = 0.0
        # Mean/variance estimator.
        self.mve_initialized = False
        self.mve_mean = 0.0
        self.mve_sraw_offset = 0.0
        self.mve_std = self.std_initial
        self.mve_gamma_mean0 = (_ADDITIONAL_GAMMA_MEAN_SCALING * _GAMMA_SCALING * dt_h) / (
            self.tau_mean_hours + dt_h)
        self.mve_gamma_variance0 = (_GAMMA_SCALING * dt_h) / (self.tau_variance_hours + dt_h)
        self.mve_gamma_initial_mean = (_ADDITIONAL_GAMMA_MEAN_SCALING * _GAMMA_SCALING * dt) / (
            _TAU_INITIAL_MEAN + dt)
        self.mve_gamma_initial_variance = (_GAMMA_SCALING * dt) / (_TAU_INITIAL_VARIANCE + dt)
        self.mve_gamma_mean = 0.0
        self.mve_gamma_variance = 0.0
        self.mve_uptime_gamma = 0.0
        self.mve_uptime_gating = 0.0
        self.mve_gating_minutes = 0.0
        # Adaptive low-pass.
        self.lp_a1 = dt / (_LP_TAU_FAST + dt)
        self.lp_a2 = dt / (_LP_TAU_SLOW + dt)
        self.lp_initialized = False
        self.lp_x1 = self.lp_x2 = self.lp_x3 = 0.0

    def process(self, sraw):
        # One raw sample (ticks) in, the VOC index (int, 0 during blackout) out.
        if self.uptime <= _INITIAL_BLACKOUT:
            self.uptime += self.interval
        else:
            if 0 < sraw < 65000:
                if sraw < _SRAW_MINIMUM + 1:
                    sraw = _SRAW_MINIMUM + 1
                elif sraw > _SRAW_MINIMUM + 32767:
                    sraw = _SRAW_MINIMUM + 32767
                self.sraw = float(sraw - _SRAW_MINIMUM)
            # The mox model and sigmoid use the estimator as it stood before this sample.
            mean = self.mve_mean + self.mve_sraw_offset
            gi = (self.sraw - mean) / (-(self.mve_std + _SRAW_STD_BONUS)) * self.gain
            gi = self._sigmoid_scaled(gi)
            gi = self._lowpass(gi)
            if gi < 0.5:
                gi = 0.5
            self.index = gi
            if self.sraw > 0.0:
                self._estimate(self.sraw)
        return int(self.index + 0.5)

    def _sigmoid_scaled(self, sample):
        x = _SIGMOID_K * (sample - _SIGMOID_X0)
        if x < -50.0:
            return _SIGMOID_L
        if x > 50.0:
            return 0.0
        if sample >= 0.0:
            shift = (_SIGMOID_L - 5.0 * self.index_offset) / 4.0
            return (_SIGMOID_L + shift) / (1.0 + math.exp(x)) - shift
        return (self.index_offset / _INDEX_OFFSET) * (_SIGMOID_L / (1.0 + math.exp(x)))

    def _lowpass(self, sample):
        if not self.lp_initialized:
            self.lp_x1 = self.lp_x2 = self.lp_x3 = sample
            self.lp_initialized = True
        self.lp_x1 = (1.0 - self.lp_a1) * self.lp_x1 + self.lp_a1 * sample
        self.lp_x2 = (1.0 - self.lp_a2) * self.lp_x2 + self.lp_a2 * sample
        f1 = math.exp(_LP_ALPHA * abs(self.lp_x1 - self.lp_x2))
        tau_a = (_LP_TAU_SLOW - _LP_TAU_FAST) * f1 + _LP_TAU_FAST
        a3 = self.interval / (self.interval + tau_a)
        self.lp_x3 = (1.0 - a3) * self.lp_x3 + a3 * sample
        return self.lp_x3

    def _gamma(self):
        # Learning rates for mean and variance: fast at first, slow later, frozen (gated)
        # while the index is high so that an event is not learned as the new normal.
        dt = self.interval
        limit = _FIX16_MAX - dt
        if self.mve_uptime_gamma < limit:
            self.mve_uptime_gamma += dt
        if self.mve_uptime_gating < limit:
            self.mve_uptime_gating += dt
        sig_gamma_mean = _sigmoid(_INIT_TRANSITION_MEAN, _INIT_DURATION_MEAN, self.mve_uptime_gamma)
        gamma_mean = self.mve_gamma_mean0 + (
            self.mve_gamma_initial_mean - self.mve_gamma_mean0) * sig_gamma_mean
        sig_gating = _sigmoid(_INIT_TRANSITION_MEAN, _INIT_DURATION_MEAN, self.mve_uptime_gating)
        threshold = _GATING_THRESHOLD + (_GATING_THRESHOLD_INITIAL - _GATING_THRESHOLD) * sig_gating
        sig_gating_mean = _sigmoid(_GATING_THRESHOLD_TRANSITION, threshold, self.index)
        self.mve_gamma_mean = sig_gating_mean * gamma_mean
        sig_gamma_var = _sigmoid(_INIT_TRANSITION_VARIANCE, _INIT_DURATION_VARIANCE,
                                 self.mve_uptime_gamma)
        gamma_var = self.mve_gamma_variance0 + (
            self.mve_gamma_initial_variance - self.mve_gamma_variance0) * (
            sig_gamma_var - sig_gamma_mean)
        sig_gating = _sigmoid(_INIT_TRANSITION_VARIANCE, _INIT_DURATION_VARIANCE,
                              self.mve_uptime_gating)
        threshold = _GATING_THRESHOLD + (_GATING_THRESHOLD_INITIAL - _GATING_THRESHOLD) * sig_gating
        sig_gating_var = _sigmoid(_GATING_THRESHOLD_TRANSITION, threshold, self.index)
        self.mve_gamma_variance = sig_gating_var * gamma_var
        self.mve_gating_minutes += (dt / 60.0) * (
            (1.0 - sig_gating_mean) * (1.0 + _GATING_MAX_RATIO) - _GATING_MAX_RATIO)
        if self.mve_gating_minutes < 0.0:
            self.mve_gating_minutes = 0.0
        if self.mve_gating_minutes > self.gating_max_minutes:
            self.mve_uptime_gating = 0.0

    def _estimate(self, sraw):
        if not self.mve_initialized:
            self.mve_initialized = True
            self.mve_sraw_offset = sraw
            self.mve_mean = 0.0
            return
        if self.mve_mean >= 100.0 or self.mve_mean <= -100.0:
            self.mve_sraw_offset += self.mve_mean
            self.mve_mean = 0.0
        sraw -= self.mve_sraw_offset
        self._gamma()
        delta = (sraw - self.mve_mean) / _GAMMA_SCALING
        c = self.mve_std + abs(delta)
        scale = 1.0
        if c > 1440.0:
            scale = (c / 1440.0) * (c / 1440.0)
        std = self.mve_std
        gv = self.mve_gamma_variance
        self.mve_std = math.sqrt(scale * (_GAMMA_SCALING - gv)) * math.sqrt(
            std * (std / (_GAMMA_SCALING * scale)) + ((gv * delta) / scale) * delta)
        self.mve_mean += (self.mve_gamma_mean * delta) / _ADDITIONAL_GAMMA_MEAN_SCALING
