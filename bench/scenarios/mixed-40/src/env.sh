GREETING="hello from the bench"
