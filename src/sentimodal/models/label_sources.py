"""Names of the vector sources a label space can be built from (plain constants, no torch, so
that configs can name them without loading the models)."""

GLOVE_SOURCE = "glove_6b_50d"
MINILM_SOURCE = "minilm"
#: vector sources that can place any new label
SOURCES = (GLOVE_SOURCE, MINILM_SOURCE)
