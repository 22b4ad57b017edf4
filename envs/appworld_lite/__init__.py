"""appworld-lite: offline simulated apps with state-based evaluation."""
