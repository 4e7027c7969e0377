//! The wall clock: [`SystemClock`], the `core::clock::Clock` that `serve`
//! runs on (tests pass one they move by hand).

use jiff::Timestamp;

use crate::core::clock::Clock;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
