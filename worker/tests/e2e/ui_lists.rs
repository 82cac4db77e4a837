//! The runs list (filters, durations, paging) and a definition page's duration chart in a real
//! browser (scenarios in `ui-tests/lists.js`).
