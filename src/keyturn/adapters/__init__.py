"""The edge: boto3 and hvac behind small ports, errors translated once, here."""
