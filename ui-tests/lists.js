// Browser scenarios of the runs list and the definition page's duration chart, merged into
// the scenarios of ui.js (same contract: the scenario answers what it saw, the Rust test asserts).
"use strict";

module.exports = ({ base, arg }) => ({
});
