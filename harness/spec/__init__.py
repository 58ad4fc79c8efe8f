"""The lowest floor: the file formats (scenarios, data, initializers, conventions), tolerances, printed numbers."""
