"""Resource faults: a CPU hog, and tenants exhausting their disk quota and request budget."""
