//! Time as a parameter: every "now" in rollbackd comes from a [`Clock`], so
//! cooldowns, holds and rate limits are tested with a clock moved by hand.

use jiff::Timestamp;

/// Where "now" comes from. Tests pass a clock they control.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}
