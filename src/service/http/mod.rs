//! The HTTP layer: translates requests into calls and results into
//! responses, and nothing else.
//!
//! - [`webhook`]: `POST /webhook`, Alertmanager's door (credentials,
//!   content type, size, payload; journaled before the 200).
//! - [`api`]: the router, the operator endpoints (`/api/v1/events`,
//!   replay), the probes, `GET /metrics`, and the one place where errors
//!   become HTTP responses ([`api::ApiError`]).

pub mod api;
pub mod webhook;
