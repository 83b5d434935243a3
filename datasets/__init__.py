"""Event production (Pythia 8 + parametric CMS-like detector -> NanoAOD) and data definitions."""
