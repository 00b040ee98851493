"""``python -m datasets``: every dataset adapter with the on-disk tree it expects."""

from datasets.registry import ADAPTERS

for name, adapter in ADAPTERS.items():
    print(f"{name} ({adapter.display_name}, split {adapter.split})")
    print("    " + adapter.layout.replace("\n", "\n    "))
    print()
