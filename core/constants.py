"""Physical constants shared by the layers."""

#: pp centre-of-mass energy of Run 2 and Run 3 in GeV (the default of the generation, the features'
#: ``sqrt_s`` and a dataset's metadata without one; 8000.0 for the 2012 data)
SQRT_S = 13000.0
