# Read by the flask command only (never by gunicorn), so local CLI use defaults to development
# while a server started any other way defaults to production.
FLASK_APP=wsgi
EXPERTBOOK_ENV=development
