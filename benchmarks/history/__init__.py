"""A history check of minimess: clients record what they did and saw, faults strike, a checker judges."""
