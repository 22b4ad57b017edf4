"""Offline AppWorld-style environments for long-horizon agents (agentmem.envs)."""
