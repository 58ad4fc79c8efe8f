"""Builds the notebook fixtures of tests/test_notebooks.py and tests/test_audit_batch.py with nbformat.

The lab dumps in ../shared/seeds/ are text renderings of notebooks; these are real ``.ipynb``
files rebuilt from them. ``student_004.ipynb`` is 004's homework as the student handed it in
(``In [..]`` counts, saved outputs and the student's ``TwoLayerPerceptron`` with its wrong
binary cross-entropy gradient: ``dZ2 = (A2 - y) * sigmoid'(Z2)``); the one line the text
rendering cut (``self.backward_prop(X_batch, y_batch, Z1,A1,``) is completed as written in the
cell's own call signature. ``student_004_fixed.ipynb`` is the same notebook with the correct
gradient ``dZ2 = A2 - y``. ``backward_004.ipynb`` writes the backward pass as a function
``backward(params, X, y)``, with the sheet's mistake, after a ``%matplotlib inline`` magic.

Run ``python tests/notebooks/build.py`` to rewrite them; the tests check that the committed
files are exactly what this builder writes (cell ids are fixed, so the bytes are too).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

HERE = Path(__file__).resolve().parent

PROBLEM_2 = """Problem 2

Designed a neural net that contained 10 units in its hidden layer, used a batch size of 10, a learning rate \
of 0.001, a tolerance of 0.1, and 1000 as the maximum number of iterations. Obtained a 99.5% accuracy on \
training data and 110% accuracy on the test data."""

INSTRUCTIONS = """Instructions:

Goal: implement from scratch backprop to train a simple neural network and test it on a simple dataset.

- Implement backprop to train a two-layer perceptron: an input layer, a hidden layer, and an output layer.
- For the hidden layer use ReLU as an activation function and for the output layer use logistic sigmoid.
- Use cross-entropy loss as the network's loss function and mini-batch SGD as the optimizer."""

IMPORTS = """import numpy as np
import pickle
import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split"""

LOAD = """# Load xor toy dataset
with open('xordata.pkl', 'rb') as f:
    data = pickle.load(f)

X_train = data['X_train'] # 800 training data points with 2 features
y_train = data['y_train'] # training binary labels {0,1}

X_test = data['X_test']
y_test = data['y_test']"""

STUDENT_CLASS = """def relu(x):
    return np.maximum(0,x)

def relu_derivative(x):
    return np.where(x>0,1,0)

def sigmoid(x):
    return 1/(1+np.exp(-x))

def sigmoid_derivative(x):
    return sigmoid(x)*(1-sigmoid(x))

class TwoLayerPerceptron:
    def __init__(self,input_dim,hidden_dim,learning_rate=0.001,batch_size=10,epochs=1000,tol=1e-4):
        self.learning_rate=learning_rate
        self.epochs=epochs
        self.batch_size=batch_size
        self.tol=tol
        self.W1,self.b1,self.W2,self.b2=self.initialize_parameters(input_dim,hidden_dim)

    def initialize_parameters(self,input_dim,hidden_dim):
        W1=np.random.randn(input_dim,hidden_dim)
        b1=np.random.randn(hidden_dim)
        W2=np.random.randn(hidden_dim,1)
        b2=np.random.randn(1)
        return W1,b1,W2,b2

    def forward_pass(self,X):
        Z1=np.dot(X,self.W1)+self.b1
        A1=np.apply_along_axis(relu,0,Z1)
        Z2=np.dot(A1,self.W2)+self.b2
        A2=sigmoid(Z2)
        return Z1,A1,Z2,A2

    def backward_prop(self,X,y,Z1,A1,Z2,A2):
        m=X.shape[0]
        dA2=A2-np.reshape(y,(-1,1))
        dZ2=dA2*sigmoid_derivative(Z2)
        dW2=(1/m)*np.dot(A1.T,dZ2)
        db2=(1/m)*np.sum(dZ2)

        dA1=np.dot(dZ2,self.W2.T)
        dZ1=dA1*relu_derivative(Z1)
        dW1=(1/m)*np.dot(X.T,dZ1)
        db1=(1/m)*np.sum(dZ1,axis=0)
        return dW1,db1,dW2,db2

    def update_weights(self,dW1,db1,dW2,db2):
        self.W1-=self.learning_rate*dW1
        self.b1-=self.learning_rate*db1
        self.W2-=self.learning_rate*dW2
        self.b2-=self.learning_rate*db2

    def cross_entropy_loss(self,X,y):
        _,_,_,y_pred=self.forward_pass(X)
        entropy=np.where(y==1,np.log(y_pred.flatten()),np.log(1-y_pred.flatten()))
        return -np.sum(entropy)

    def predict(self, X):
        output=self.forward_pass(X)[3].flatten()
        predictions = (output > 0.5).astype(int)
        return predictions

    def accuracy(self, X,y_true):
        y_pred=self.predict(X)
        return np.mean(y_true == y_pred)

    def train(self,X,y):
        for epoch in np.arange(self.epochs):
            if self.cross_entropy_loss(X_val,y_val)<self.tol:
                break

            permutation = np.random.permutation(X_train.shape[0])
            X_train_shuffled = X_train[permutation]
            y_train_shuffled = y_train[permutation]

            for i in range(0, X_train.shape[0], self.batch_size):
                X_batch = X_train_shuffled[i:i + self.batch_size]
                y_batch = y_train_shuffled[i:i + self.batch_size]

                Z1, A1, Z2, A2 = self.forward_pass(X_batch)
                dW1, db1, dW2, db2 = self.backward_prop(X_batch, y_batch, Z1,A1,Z2,A2)
                self.update_weights(dW1, db1, dW2, db2)"""

WRONG_LINE = "        dZ2=dA2*sigmoid_derivative(Z2)\n"
FIXED_LINE = "        dZ2=dA2  # sigmoid and cross-entropy together: dL/dZ2 = A2 - y\n"

WARNING = ("<ipython-input-34-283db22abf63>:56: RuntimeWarning: divide by zero encountered in log\n"
           "  entropy=np.where(y==1,np.log(y_pred.flatten()),np.log(1-y_pred.flatten()))\n")

BACKWARD_FUNCTION = """def backward(params, X, y):
    W1, b1 = params["layers.0.kernel"], params["layers.0.bias"]
    W2, b2 = params["layers.1.kernel"], params["layers.1.bias"]
    Z1 = X @ W1 + b1
    A1 = np.maximum(Z1, 0)
    Z2 = A1 @ W2 + b2
    A2 = 1 / (1 + np.exp(-Z2))
    m = X.shape[0]
    dZ2 = (A2 - y) * A2 * (1 - A2)
    dZ1 = (dZ2 @ W2.T) * (Z1 > 0)
    return {"w1": X.T @ dZ1 / m, "b1": dZ1.sum(axis=0) / m, "w2": A1.T @ dZ2 / m, "b2": dZ2.sum(axis=0) / m}"""


def _code(source: str, count: int | None, *outputs: nbformat.NotebookNode, tags: tuple[str, ...] = ()):
    cell = new_code_cell(source, execution_count=count, outputs=list(outputs))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _result(text: str, count: int) -> nbformat.NotebookNode:
    return new_output("execute_result", data={"text/plain": text}, execution_count=count)


def _stream(text: str, name: str = "stdout") -> nbformat.NotebookNode:
    return new_output("stream", name=name, text=text)


def student_004(backward_line: str = WRONG_LINE) -> nbformat.NotebookNode:
    """004's homework as handed in (In [..] counts and outputs as the text rendering shows them)."""
    cells = [
        new_markdown_cell(PROBLEM_2),
        new_markdown_cell("Neural Nets Implementation & XOR Problem"),
        _code(IMPORTS, 33),
        _code(LOAD, 14),
        _code("print(X_train.shape, y_train.shape)\nprint(X_test.shape, y_test.shape)", 15,
              _stream("(800, 2) (800,)\n(200, 2) (200,)\n")),
        _code("X_val,X_test,y_val,y_test=train_test_split(X_test,y_test,test_size=0.5)", 16),
        _code("plt.scatter(X_train[:,0], X_train[:,1], s=40, c=y_train, cmap=plt.cm.Spectral)", 7,
              _result("<matplotlib.collections.PathCollection at 0x7fabf133ee80>", 7)),
        new_markdown_cell(INSTRUCTIONS),
        _code(STUDENT_CLASS.replace(WRONG_LINE, backward_line), 34),
        _code("model=TwoLayerPerceptron(2,10,1)", 35),
        _code("model.train(X_train,y_train)", 36, _stream(WARNING, "stderr")),
        _code("model.accuracy(X_test,y_test)", 37, _result("1.0", 37)),
        _code("model.cross_entropy_loss(X_test,y_test)", 38, _stream(WARNING, "stderr"),
              _result("0.02884181588548293", 38)),
        _code("model.accuracy(X_train,y_train)", 39, _result("0.995", 39)),
        _code("", None),
    ]
    return _notebook(cells)


def backward_004() -> nbformat.NotebookNode:
    """The sheet's backward pass written as a function, in a notebook with a magic and a training loop."""
    cells = [
        _code("import numpy as np\n%matplotlib inline\nimport matplotlib.pyplot as plt", 1),
        _code("LEARNING_RATE = 0.1\nHIDDEN = 10", 2),
        _code(BACKWARD_FUNCTION, 3),
        _code("for epoch in range(10**9):\n    pass", 4, tags=("skip-audit",)),
        _code("plt.plot([0, 1], [1, 0])\nplt.show()", 5),
        _code("print(HIDDEN)", 6, _stream("10\n")),
    ]
    return _notebook(cells)


def _notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i + 1}"  # fixed ids: the builder writes the same bytes every time
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nbformat.validate(nb)
    return nb


FIXTURES = {
    "student_004.ipynb": student_004,
    "student_004_fixed.ipynb": lambda: student_004(FIXED_LINE),
    "backward_004.ipynb": backward_004,
}


def render(name: str) -> str:
    return nbformat.writes(FIXTURES[name]())


if __name__ == "__main__":
    for name in FIXTURES:
        (HERE / name).write_text(render(name))
        print(f"wrote {name}", file=sys.stderr)
