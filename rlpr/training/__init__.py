"""RLPR training glue on verl: scoring batch, trainer, std filter, r' cache, config and launcher checks."""
