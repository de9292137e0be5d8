// PLACEHOLDER: replaced by the real implementation before this lands.
