"""Training: the LightningModules, their losses, runs and checkpoints, and ``audiosr fit / validate / test``."""
