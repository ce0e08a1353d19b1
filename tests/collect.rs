//! Integration tests (collect).
