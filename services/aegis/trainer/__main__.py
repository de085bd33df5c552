from aegis.server import main
from aegis.trainer.service import DEFINITION

if __name__ == "__main__":
    main(DEFINITION)
