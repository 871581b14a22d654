"""`ganzoo serve`: a local web page to sample and translate (work in progress on this branch)."""
