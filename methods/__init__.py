"""What is compared: embedders and clusterers."""
