//! A bucket's size and refill speed as people write it: `10+2/s` is a burst of 10, then 2 a
//! second; `5+1/min` is a burst of 5, then one a minute.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::Quota;

/// A token bucket: `burst` requests at once, then one every `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    burst: NonZeroU32,
    /// Requests per `unit` once the burst is spent.
    count: NonZeroU32,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Second,
    Minute,
    Hour,
}

impl Unit {
    fn duration(self) -> Duration {
        match self {
            Self::Second => Duration::from_secs(1),
            Self::Minute => Duration::from_secs(60),
            Self::Hour => Duration::from_secs(3600),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "min",
            Self::Hour => "h",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a rate is BURST+COUNT/UNIT with UNIT one of s, min, h (e.g. `10+2/s`); both numbers 1 or more"
)]
pub struct BadRate;

impl Rate {
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// Time between two tokens once the burst is spent.
    pub fn period(&self) -> Duration {
        self.unit.duration() / self.count.get()
    }

    pub fn quota(&self) -> Quota {
        // `period()` is at least 1 h / u32::MAX, never zero, so `with_period` always answers.
        Quota::with_period(self.period())
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.burst)
    }
}

impl FromStr for Rate {
    type Err = BadRate;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (burst, rest) = raw.trim().split_once('+').ok_or(BadRate)?;
        let (count, unit) = rest.split_once('/').ok_or(BadRate)?;
        let number = |text: &str| {
            text.trim()
                .parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or(BadRate)
        };
        let unit = match unit.trim() {
            "s" => Unit::Second,
            "min" => Unit::Minute,
            "h" => Unit::Hour,
            _ => return Err(BadRate),
        };
        Ok(Self {
            burst: number(burst)?,
            count: number(count)?,
            unit,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}/{}", self.burst, self.count, self.unit.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print_the_same_way() {
        let rate: Rate = "10+2/s".parse().unwrap();
        assert_eq!(rate.burst(), 10);
        assert_eq!(rate.period(), Duration::from_millis(500));
        assert_eq!(rate.to_string(), "10+2/s");
        let slow: Rate = " 5 + 1 / min ".parse().unwrap();
        assert_eq!(slow.period(), Duration::from_secs(60));
        assert_eq!(
            "3+4/h".parse::<Rate>().unwrap().period(),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn malformed_rates_are_refused() {
        for bad in [
            "", "10", "10/s", "0+1/s", "1+0/s", "1+1/day", "x+1/s", "-1+1/s",
        ] {
            assert_eq!(bad.parse::<Rate>(), Err(BadRate), "{bad}");
        }
    }
}
