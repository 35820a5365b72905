"""Sweeps: the lr x seed protocol over methods (`sweep`), the paper's figures as named sweeps
(`presets`), and the same sweep split into cells on a Ray cluster (`cells`, `cluster`, `cell_task`,
`progress`)."""
