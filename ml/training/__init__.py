"""Training scripts: each one builds the models of one family into the model store."""
