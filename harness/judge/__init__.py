"""The judge floor: runs compared, verdicts, explanations and diagnoses; runs are asked for through ``runs.Runs``."""
