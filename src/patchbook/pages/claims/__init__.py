"""What the pages say about their numbers: verdict functions, one module per part, each unit-tested."""
