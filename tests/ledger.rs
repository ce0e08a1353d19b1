//! Integration tests (ledger).
