import { useTestMysql } from "../support/mariadb.js";
import { brokerSuite } from "./suite.js";

const mysql = useTestMysql();
brokerSuite("mysql", (name) => mysql().database(name));
