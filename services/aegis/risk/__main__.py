from aegis.risk.service import DEFINITION
from aegis.server import main

if __name__ == "__main__":
    main(DEFINITION)
