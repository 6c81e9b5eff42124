"""``vtrep benchmark``: suites of ``vtrep fit`` + ``vtrep probe`` runs over datasets and seeds, resumable."""
