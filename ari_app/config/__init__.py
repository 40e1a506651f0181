"""The configuration loaders: YAML files and the jurisdiction table into the model of ari_app.core.model."""
