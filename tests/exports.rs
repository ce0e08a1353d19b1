//! Integration tests (exports).
