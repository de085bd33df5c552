from aegis.server import main
from aegis.virtual_account.service import DEFINITION

if __name__ == "__main__":
    main(DEFINITION)
