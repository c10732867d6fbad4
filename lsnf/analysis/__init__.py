"""Results into answers (docs/method.md §9): measurements, replicates, the comparison and its
course, the settle rule's proof, the tables, the published numbers, cost, forest plots and
curves."""
