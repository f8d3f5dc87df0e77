"""Portal pages and the privacy API of accounts, one module per subject."""
