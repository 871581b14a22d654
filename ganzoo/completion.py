"""Shell completion of Hydra overrides (placeholder until the completion module lands)."""


def complete_overrides(command, previous, incomplete):
    return []
