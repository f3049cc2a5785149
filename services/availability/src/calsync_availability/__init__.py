"""calsync availability: busy-slot projections, availability and bookings (no double booking)."""
