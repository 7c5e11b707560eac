"""HTTP service over the optimiser library (FastAPI). No model logic lives here."""
