"""Infrastructure every part uses (rl included): errors, atomic io, YAML configs, the CLI runner, interrupts,
devices, the causal-LM loader, the offline model registry and `icm-rm doctor`."""
