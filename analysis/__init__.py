"""Analyses on top of hrnet_core: complexity, diagrams, feature maps, the fusion ablation, and the CLI."""
