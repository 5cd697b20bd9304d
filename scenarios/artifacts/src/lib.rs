//! Scenario artifacts (placeholder until implemented).
