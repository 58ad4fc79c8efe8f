"""The lowest floor: the file formats (scenarios, data, initializers, conventions), names, tolerances and printed numbers."""
