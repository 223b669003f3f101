"""The gpuscale component provider: Pulumi's Python component provider host serving gpuscale.components
(gpuscale/provider.py says which, and how the schema is inferred)."""

from gpuscale.provider import main

if __name__ == "__main__":
    main()
