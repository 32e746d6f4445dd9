//! End-to-end tests (see issue 7).
