"""Image files: validation and consistent decoding, the on_bad_images policy, `ganzoo data verify`."""
