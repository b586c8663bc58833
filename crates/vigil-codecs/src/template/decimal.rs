//! Exact decimal arithmetic for a rule's `scale` and `offset`, and for epoch seconds.
//!
//! A JSON number reaches us as the nearest `f64`; its shortest round-trip decimal form (what
//! Rust's `{:e}` prints) is the number the vendor wrote whenever it has at most 15 significant
//! digits. `value × scale + offset` is computed on those decimals exactly, in 128-bit integers,
//! and rounded once to the nearest `f64`: 338 × 0.1 gives 33.8, not the
//! 33.800000000000004 of `f64` multiplication. When a product would not fit 128 bits (values
//! far outside any plausible range), plain `f64` arithmetic is used instead.

/// `mantissa × 10^exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    mantissa: i128,
    exponent: i32,
}

impl Decimal {
    pub(crate) const ONE: Decimal = Decimal {
        mantissa: 1,
        exponent: 0,
    };
    pub(crate) const ZERO: Decimal = Decimal {
        mantissa: 0,
        exponent: 0,
    };

    /// The shortest decimal that reads back as `x`; `None` for NaN and infinities.
    pub(crate) fn from_f64(x: f64) -> Option<Decimal> {
        if !x.is_finite() {
            return None;
        }
        // `{:e}` prints the shortest round-trip form: "3.38e2", "-1e-7", "0e0".
        let text = format!("{x:e}");
        let (digits, exponent) = text.split_once('e')?;
        let exponent: i32 = exponent.parse().ok()?;
        let (negative, digits) = match digits.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, digits),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let mut mantissa: i128 = 0;
        for c in whole.chars().chain(fraction.chars()) {
            let digit = i128::from(c.to_digit(10)?);
            mantissa = mantissa.checked_mul(10)?.checked_add(digit)?;
        }
        let exponent = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
        Some(
            Decimal {
                mantissa: if negative { -mantissa } else { mantissa },
                exponent,
            }
            .normalised(),
        )
    }

    pub(crate) fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// Trailing zeros of the mantissa moved into the exponent, so equal values compare equal.
    fn normalised(mut self) -> Decimal {
        if self.mantissa == 0 {
            return Decimal::ZERO;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        Some(
            Decimal {
                mantissa: self.mantissa.checked_mul(other.mantissa)?,
                exponent: self.exponent.checked_add(other.exponent)?,
            }
            .normalised(),
        )
    }

    fn checked_add(self, other: Decimal) -> Option<Decimal> {
        if self.is_zero() {
            return Some(other);
        }
        if other.is_zero() {
            return Some(self);
        }
        let (high, low) = if self.exponent >= other.exponent {
            (self, other)
        } else {
            (other, self)
        };
        let shift = u32::try_from(high.exponent.checked_sub(low.exponent)?).ok()?;
        let aligned = high.mantissa.checked_mul(10i128.checked_pow(shift)?)?;
        Some(
            Decimal {
                mantissa: aligned.checked_add(low.mantissa)?,
                exponent: low.exponent,
            }
            .normalised(),
        )
    }

    /// The nearest `f64` (correctly rounded by the standard library's parser).
    pub(crate) fn to_f64(self) -> f64 {
        format!("{}e{}", self.mantissa, self.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }

    /// The value × 10^`shift`, rounded to the nearest integer, halves away from zero; `None`
    /// when it does not fit 128 bits.
    pub(crate) fn round_scaled(self, shift: i32) -> Option<i128> {
        let exponent = self.exponent.checked_add(shift)?;
        if exponent >= 0 {
            return self
                .mantissa
                .checked_mul(10i128.checked_pow(u32::try_from(exponent).ok()?)?);
        }
        let Some(divisor) = 10i128.checked_pow(exponent.unsigned_abs()) else {
            // More than 38 decimal places below the units: rounds to zero.
            return Some(0);
        };
        let (quotient, remainder) = (self.mantissa / divisor, self.mantissa % divisor);
        let half_or_more = remainder.unsigned_abs() >= divisor.unsigned_abs().div_ceil(2);
        Some(match (half_or_more, self.mantissa < 0) {
            (false, _) => quotient,
            (true, false) => quotient + 1,
            (true, true) => quotient - 1,
        })
    }
}

/// `value × scale + offset`, exact in decimal and rounded once (see the module documentation).
pub(crate) fn affine(value: f64, scale: Decimal, offset: Decimal) -> f64 {
    if scale == Decimal::ONE && offset.is_zero() {
        return value;
    }
    Decimal::from_f64(value)
        .and_then(|v| v.checked_mul(scale))
        .and_then(|p| p.checked_add(offset))
        .map_or_else(|| value * scale.to_f64() + offset.to_f64(), Decimal::to_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> Decimal {
        Decimal::from_f64(x).unwrap()
    }

    #[test]
    fn shortest_decimal_forms() {
        assert_eq!(
            d(0.1),
            Decimal {
                mantissa: 1,
                exponent: -1
            }
        );
        assert_eq!(
            d(338.0),
            Decimal {
                mantissa: 338,
                exponent: 0
            }
        );
        assert_eq!(
            d(-2.5e-7),
            Decimal {
                mantissa: -25,
                exponent: -8
            }
        );
        assert_eq!(d(1200.0), d(1.2e3));
        assert_eq!(d(0.0), Decimal::ZERO);
        assert_eq!(d(-0.0), Decimal::ZERO);
        assert_eq!(Decimal::from_f64(f64::NAN), None);
        assert_eq!(Decimal::from_f64(f64::INFINITY), None);
        assert_eq!(d(f64::MAX).to_f64(), f64::MAX);
        assert_eq!(d(5e-324).to_f64(), 5e-324);
    }

    #[test]
    fn scaling_is_exact_where_f64_is_not() {
        assert_ne!(338.0 * 0.1, 33.8, "the f64 product this module avoids");
        assert_eq!(affine(338.0, d(0.1), Decimal::ZERO), 33.8);
        assert_eq!(affine(3380.0, d(0.01), Decimal::ZERO), 33.8);
        assert_eq!(affine(0.7, d(0.1), d(0.2)), 0.27);
        assert_eq!(affine(1234.0, d(0.1), d(-100.0)), 23.4);
        assert_eq!(affine(72.0, Decimal::ONE, Decimal::ZERO), 72.0);
        assert_eq!(affine(-5.0, d(2.0), d(0.5)), -9.5);
    }

    #[test]
    fn overflow_falls_back_to_f64() {
        // 1e300 × 1e-300 has exponents that do not overflow; a sum across 600 decimal places
        // does not fit 128 bits and falls back.
        assert_eq!(affine(1e300, d(1e-300), Decimal::ZERO), 1.0);
        assert_eq!(affine(1e300, Decimal::ONE, d(1e-300)), 1e300);
        assert!(affine(f64::MAX, d(10.0), Decimal::ZERO).is_infinite());
    }

    #[test]
    fn rounding_to_milliseconds() {
        assert_eq!(d(1.5).round_scaled(3), Some(1500));
        assert_eq!(d(1795316400.1234).round_scaled(3), Some(1_795_316_400_123));
        assert_eq!(d(1795316400.1235).round_scaled(3), Some(1_795_316_400_124));
        assert_eq!(d(0.0005).round_scaled(3), Some(1));
        assert_eq!(d(0.0004999).round_scaled(3), Some(0));
        assert_eq!(d(-0.0005).round_scaled(3), Some(-1));
        assert_eq!(d(1e-60).round_scaled(3), Some(0));
        assert_eq!(d(1e300).round_scaled(3), None);
    }
}
