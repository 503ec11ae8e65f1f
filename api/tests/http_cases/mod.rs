//! The rest of the HTTP API tests, split by subject (one test binary: `http_api`).

mod errors;
mod hardening;
mod service;
