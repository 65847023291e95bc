"""What several test modules share: helpers live here once, so no test imports another."""
