from flask import Blueprint
bp = Blueprint("experts", __name__)
